namespace moat::core::net {}
