from adledger_cli.main import main

main()
