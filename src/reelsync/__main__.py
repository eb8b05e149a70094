from reelsync.cli import main

main()
