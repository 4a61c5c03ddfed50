from echoforge.cli import main

main()
