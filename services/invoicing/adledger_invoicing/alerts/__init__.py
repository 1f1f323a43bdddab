"""Low-balance and runway alerts (rules I6, I8): a faust-streaming job over posted spend and balances.

Run it as its own worker: `python -m adledger_invoicing.alerts worker -l info`. `rules` holds the
pure arithmetic; `app.create_app(settings)` builds the Faust app.
"""
