"""kanplatform.data."""
