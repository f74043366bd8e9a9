"""First-party tlbench plugins, loaded through the `tlbench` entry points like any other."""
