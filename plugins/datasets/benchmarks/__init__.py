"""The field's image benchmarks by name (Office-31, Office-Home, PACS, VLCS, DomainNet, VisDA-2017),
read lazily from their published layouts: ``catalogue`` holds the facts, ``layout`` reads and
checks a tree, ``plugin`` registers one dataset plugin per benchmark."""
