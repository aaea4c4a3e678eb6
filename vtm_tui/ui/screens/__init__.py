"""Every screen pushed over the tabs: the confirmation, the full-screen log, the Registry tab's
dialogs; their styles are screens.tcss."""
