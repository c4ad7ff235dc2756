//! Hardware backends (being written).
