"""kanplatform.train."""
