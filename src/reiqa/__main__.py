from reiqa.cli import main

main()
