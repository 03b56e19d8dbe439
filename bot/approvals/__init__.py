"""Four eyes for destructive steps: the approval model, the engine (atomic claim, execution,
audit), the access policy, and the messages approvals are shown with."""
