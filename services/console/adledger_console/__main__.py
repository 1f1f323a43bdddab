from adledger_console.main import main

main()
