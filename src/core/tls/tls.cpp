namespace moat::core::tls {}
