namespace moat::policy {}
