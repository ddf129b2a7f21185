namespace moat::core::policy {}
