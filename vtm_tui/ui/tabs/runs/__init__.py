"""The Runs tab: every run in the store, live, with the selected run's card, charts and log."""
