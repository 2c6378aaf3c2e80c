"""``python -m iga`` = the ``iga`` command (sweep launchers use it: no reliance on the console script's PATH)."""

from iga.cli import main

if __name__ == "__main__":
    main()
