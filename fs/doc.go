// Package fs presents a cache.Catalog as a read-only go-fuse filesystem:
// one directory per store, one folder per model (a DIGITS Pretrained Model
// job: job-named files, remote-name symlinks, status.pickle), plus the
// .refresh gesture and the models.tsv table.
//
// Lookup and Readdir answer from the catalog's cached listings; file bodies
// come from the catalog's Content. Nothing here fetches on its own, and no
// lock is held across a fetch or a kernel notification. Model folders and
// their entries are versioned (inode numbers include the content's
// version): the kernel keeps them, and their listings, until told.
package fs
