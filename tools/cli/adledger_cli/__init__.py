"""adledger, the operator's command line: dead-letter topics, consumer lag, the ledger's audit and
what ad servers see of delivery. It reads the same ADLEDGER_* settings as the services."""
