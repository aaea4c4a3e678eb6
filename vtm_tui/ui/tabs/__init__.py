"""One package per tab: its pane (a VtmPane, base.py), its cards, its styles (<tab>.tcss)."""
