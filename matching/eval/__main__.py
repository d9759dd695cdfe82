import sys

from matching.eval.build import main

if __name__ == "__main__":
    if sys.argv[1:] != ["build"]:
        sys.exit("usage: python -m matching.eval build")
    main()
