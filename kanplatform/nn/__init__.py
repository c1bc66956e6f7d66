"""kanplatform.nn."""
