"""The scripted demo: both simulators, the service and a story of changes."""
