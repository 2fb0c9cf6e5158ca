"""GPU table and number formats (swappable CSV data)."""
