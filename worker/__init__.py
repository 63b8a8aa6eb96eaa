"""zuora-reaper: cancel Zuora report runs stuck in progress."""
