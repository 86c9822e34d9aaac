"""An end user's data on request: everything threadline holds about them, exported as JSON Lines
(GDPR articles 15 and 20), and their erasure (article 17), one durable job that deletes everything holding
their words and keeps only figures without content. See docs/privacy.md."""
