"""Screens pushed over the tabs: confirmation modal, full-screen log."""
