//! Names that are part of laggmond's interface: event kinds, severities,
//! causes, facilities, drivers and the words of the status report. Each
//! value's name is written once, in a `named!` declaration, and serde,
//! `as_str`, `Display` and the config's lists of allowed values all take
//! it from there.

/// An enum whose values each have one name; declared with `named!`.
pub trait Named: Copy + 'static {
    /// Every value, in declaration order (the order listings show them).
    fn all() -> &'static [Self];

    /// The value's name.
    fn as_str(self) -> &'static str;

    /// The value called `name`, if there is one.
    fn from_name(name: &str) -> Option<Self> {
        Self::all()
            .iter()
            .copied()
            .find(|value| value.as_str() == name)
    }
}

/// Declares a fieldless enum and the one name of each value:
///
/// ```ignore
/// named! {
///     #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
///     pub enum Link {
///         Up => "up",
///         Down => "down",
///     }
/// }
/// ```
///
/// The enum gets `ALL` (every value, in declaration order), a `const`
/// `as_str`, `Display` and [`Named`]; each value gets `#[serde(rename)]`
/// to its name, so the enum must derive `Serialize` and `Deserialize`.
macro_rules! named {
    (
        $(#[$meta:meta])*
        $vis:vis enum $Enum:ident {
            $(
                $(#[$value_meta:meta])*
                $Value:ident => $name:literal
            ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis enum $Enum {
            $(
                $(#[$value_meta])*
                #[serde(rename = $name)]
                $Value,
            )+
        }

        impl $Enum {
            /// Every value, in declaration order.
            pub const ALL: [$Enum; [$($name),+].len()] = [$($Enum::$Value),+];

            /// The name used in the config, JSON, logs, hook environments
            /// and metrics labels.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($Enum::$Value => $name,)+
                }
            }
        }

        impl $crate::names::Named for $Enum {
            fn all() -> &'static [$Enum] {
                &$Enum::ALL
            }

            fn as_str(self) -> &'static str {
                $Enum::as_str(self)
            }
        }

        impl ::std::fmt::Display for $Enum {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub(crate) use named;

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::Named;

    named! {
        /// A test enum.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
        enum Weather {
            /// Documented values keep their documentation.
            Sunny => "sunny",
            HeavyRain => "heavy_rain",
        }
    }

    #[test]
    fn the_one_name_is_used_everywhere() {
        assert_eq!(Weather::ALL, [Weather::Sunny, Weather::HeavyRain]);
        assert_eq!(Weather::HeavyRain.as_str(), "heavy_rain");
        assert_eq!(Weather::HeavyRain.to_string(), "heavy_rain");
        assert_eq!(
            serde_json::to_string(&Weather::ALL).unwrap(),
            r#"["sunny","heavy_rain"]"#
        );
        let back: Weather = serde_json::from_str(r#""heavy_rain""#).unwrap();
        assert_eq!(back, Weather::HeavyRain);
        assert_eq!(Weather::from_name("sunny"), Some(Weather::Sunny));
        assert_eq!(Weather::from_name("HeavyRain"), None);
    }

    #[test]
    fn an_unknown_name_is_refused_as_serde_refuses_it() {
        let error = serde_json::from_str::<Weather>(r#""snow""#).unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown variant `snow`, expected `sunny` or `heavy_rain` at line 1 column 6"
        );
    }
}
