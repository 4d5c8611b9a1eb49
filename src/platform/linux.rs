//! Linux: rtnetlink.
