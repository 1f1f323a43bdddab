from adledger_order_escrow.main import main

main()
