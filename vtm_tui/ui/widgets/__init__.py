"""Widgets more than one tab (or screen) uses: the live table, log views, one-line text, path
completion, the status header, the footer."""
