//! Why a received frame did not count as an answer. One enum for the
//! frame parser and the path state machine alike, so that the daemon keeps
//! one counter of ignored frames, labelled by these names.

use serde::{Deserialize, Serialize};

use crate::names::named;

named! {
    /// Why a frame was ignored. The names are metrics labels: stable.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
    pub enum Ignored {
        /// Shorter than an Ethernet header, or an ARP frame shorter than
        /// its 42 bytes.
        Short => "short",
        /// Not an ARP frame (another EtherType, or an 802.1Q tag: the
        /// socket is bound to the port itself, so a tagged frame belongs
        /// to a VLAN on top of it).
        NotArp => "not_arp",
        /// An ARP frame for another hardware or protocol type, or with
        /// address lengths that do not fit Ethernet and IPv4.
        Malformed => "malformed",
        /// An ARP request (another host asking), not an answer.
        NotReply => "not_reply",
        /// A reply whose Ethernet destination or ARP target hardware
        /// address is not the port's: an answer to someone else.
        NotForUs => "not_for_us",
        /// A reply from an address that is not one of the group's targets.
        NotATarget => "not_a_target",
        /// A reply from a target not asked since the link came up.
        Unsolicited => "unsolicited",
        /// A reply from a target whose latest request is older than the
        /// window of `missed` intervals: too late to say the path works.
        Late => "late",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::Named;

    #[test]
    fn the_names_are_stable() {
        let names: Vec<&str> = Ignored::ALL.iter().map(|reason| reason.as_str()).collect();
        assert_eq!(
            names,
            [
                "short",
                "not_arp",
                "malformed",
                "not_reply",
                "not_for_us",
                "not_a_target",
                "unsolicited",
                "late",
            ]
        );
        assert_eq!(Ignored::from_name("not_for_us"), Some(Ignored::NotForUs));
        assert_eq!(
            serde_json::to_string(&Ignored::NotATarget).unwrap(),
            r#""not_a_target""#
        );
    }
}
