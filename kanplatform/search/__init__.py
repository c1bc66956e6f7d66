"""kanplatform.search."""
