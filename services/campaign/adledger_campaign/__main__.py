from adledger_campaign.main import main

main()
