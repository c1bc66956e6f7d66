"""kanplatform.tracking."""
