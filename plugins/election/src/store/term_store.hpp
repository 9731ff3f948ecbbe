// The election's durable state (PersistentState: term, vote, time as admin) in one SQLite file, by
// default <state dir>/election.db. A vote or a term is relied upon only after save() returned, so a
// node that restarts - even after SIGKILL or a power cut - never votes twice in a term and never
// goes back to an older term (README.md, "Safety").
//
// The file: WAL journal, synchronous=FULL (save() returns once the commit is on disk), mode 0600,
// PRAGMA application_id "CELE" and user_version 1. One row holds the state.
//
// Refusals (TermStoreError, never a silent wipe): a file that is not SQLite, a SQLite database of
// another application, a schema newer than this code, a damaged file, a file group or others may
// read, a save that would lower the stored term.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>

#include "core/election.hpp"

namespace chorus::election {

class TermStoreError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class TermStore {
 public:
  // Opens or creates the file (and its directory, mode 0700); throws TermStoreError naming the file.
  static std::unique_ptr<TermStore> open(const std::string &path);
  virtual ~TermStore() = default;

  // The state as stored (all zero for a new file).
  virtual PersistentState load() = 0;
  // Durable when it returns. Throws TermStoreError on an I/O error or when state.term is lower than
  // the stored term (terms never go back).
  virtual void save(const PersistentState &state) = 0;
  virtual const std::string &path() const = 0;
};

}  // namespace chorus::election
