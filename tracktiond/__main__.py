from tracktiond.cli import main

main()
