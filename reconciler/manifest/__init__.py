"""Finding, rendering, loading and validating manifests into a desired state."""
from .loader import Desired, find_files, load
from .secrets import SecretPolicy, account_secrets, manifests_root, resolve
from .template import load_var_file

__all__ = ["Desired", "find_files", "load", "account_secrets", "resolve", "load_var_file",
           "SecretPolicy", "manifests_root"]
