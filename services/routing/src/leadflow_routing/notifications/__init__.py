"""Reps told at once: on an assignment (first routing, re-route, claim, reassignment, MQL hand-off)
and on an SLA warning the owning rep gets a Slack message and/or an email, through the channels set
for them. Each notification is written in the transaction of what it tells of (``handlers``), then
sent after commit by a background sender (``sender``) that claims rows with ``FOR UPDATE SKIP
LOCKED`` and a lease and retries with backoff. ``messages`` builds the Slack Block Kit body and the
email, ``store`` holds every SQL statement, ``admin`` the admin API, ``settings`` the knobs."""
