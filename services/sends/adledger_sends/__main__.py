from adledger_sends.main import main

main()
