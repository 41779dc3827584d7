//! The shared-memory store (`storage="shm://NAME"`): one exact limit across the processes of a
//! host. Built so far: the region (`region.rs`: safe creation, opening and validation) and its
//! header (`header.rs`: the layout, stated once).

pub mod header;
pub mod region;
