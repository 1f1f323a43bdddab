from adledger_invoicing.main import main

main()
