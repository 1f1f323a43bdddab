from adledger_identity.main import main

main()
