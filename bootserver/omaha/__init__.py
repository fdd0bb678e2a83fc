"""The Omaha 3.0 protocol as Flatcar's update_engine speaks it: XML in, XML out, no I/O."""
