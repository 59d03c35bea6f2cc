"""Developer tools for mailform (not shipped in the package): the local mail stack."""
