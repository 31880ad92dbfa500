package cache

import (
	"errors"

	"github.com/modelstorefs/modelstorefs/digits"
	"github.com/modelstorefs/modelstorefs/remote"
)

// A model folder's files are learned from one answer where the store
// gives one: master.json "folders" (modelstorefs serve), else the folder's
// own listing (nginx autoindex, Apache, python http.server), fetched with
// info.json and aux.json. Only where neither says anything is each file
// asked about with a HEAD. Whether a store lists its folders is learned
// from its answers, per store.

// What a store's folder listings are worth, learned from its answers.
const (
	listingsUnknown int32 = iota
	listingsYes
	listingsNo
)

// folderListings reports whether a folder's listing is worth asking for.
func (s *Store) folderListings() bool { return s.listings.Load() != listingsNo }

// trustListing returns what a folder listing says the folder holds, when
// it may be believed: it must agree with the answers for info.json and
// aux.json (auxKnown: aux.json was answered, found or not), else it is no
// listing of this folder (an index page, a login page) and every file is
// asked about. A store that answers no listing for a folder whose
// info.json it has is not asked for listings again.
func (s *Store) trustListing(f remote.Folder, err error, in digits.Input, auxKnown bool) remote.Folder {
	switch {
	case errors.Is(err, remote.ErrNoListing):
		if in.Info.Found {
			s.listings.Store(listingsNo)
		}
		return nil
	case err != nil:
		return nil // failing for now: the HEADs tell, or fail the model
	}
	_, hasInfo := f.File(digits.InfoFile)
	_, hasAux := f.File(digits.AuxFile)
	if hasInfo != in.Info.Found || (auxKnown && hasAux != in.Aux.Found) {
		if in.Info.Found && !hasInfo {
			s.listings.Store(listingsNo)
		}
		return nil
	}
	s.listings.Store(listingsYes)
	return f
}
