"""The one place that runs load → resolve → plan → (verify) → apply.

`plan`, `apply` and `reconcile` (and later the fleet's jobs) call these
functions; the commands under ``cli/`` only parse options, call them and
render. Approval, verification and progress reporting are passed in, so the
same sequence runs behind a prompt, in CI and in the reconcile loop.

Import the part you need (``workflow.inputs``, ``workflow.run``,
``workflow.checks``, ``workflow.reconcile``) rather than this package, so that
``validate`` does not pay for the probes' imports.
"""
