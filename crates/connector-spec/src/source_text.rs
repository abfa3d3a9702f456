//! What every piece of spec text that compiles on use shares (templates, JSONPaths): it
//! compares, prints, serialises and deserialises as the text the user wrote.

/// Implements `Debug`, `PartialEq`, `From<&str>`, `Serialize` and `Deserialize` for a type
/// with a `source: String` field and a `new(impl Into<String>)` constructor.
macro_rules! source_text {
    ($ty:ident) => {
        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!(stringify!($ty), "({:?})"), self.source)
            }
        }

        impl PartialEq for $ty {
            fn eq(&self, other: &Self) -> bool {
                self.source == other.source
            }
        }

        impl From<&str> for $ty {
            fn from(s: &str) -> Self {
                Self::new(s)
            }
        }

        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.source)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                <String as serde::Deserialize>::deserialize(d).map(Self::new)
            }
        }
    };
}

pub(crate) use source_text;
