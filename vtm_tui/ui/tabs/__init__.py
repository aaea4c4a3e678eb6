"""One TabPane per tab of the app."""
