"""The fleet: inbox scans, re-verification and reconcile passes as jobs on a task queue
(procrastinate) in the PostgreSQL registry's database, run by `mailform worker`.

* ``config``: what a worker was started with (registry, intervals, manifests);
* ``queue``: the procrastinate app, its own schema, deferring rounds, the queue's size;
* ``jobs``: what one job does (scan one inbox, re-verify one account, one pass), with
  the account's status condition written on every exit path and metrics counted;
* ``schedule``: which jobs are due (the periodic tick), stalled-job recovery;
* ``worker``: running it all until SIGTERM.
"""
