from adledger_wallet.main import main

main()
