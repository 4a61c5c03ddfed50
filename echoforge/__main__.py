from echoforge.cli import run

run()
