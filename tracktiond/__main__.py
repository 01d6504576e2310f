"""`python -m tracktiond`: the same entry point as the console script."""

from tracktiond.startup import main

main()
