from adledger_spend_consumer.main import main

main()
